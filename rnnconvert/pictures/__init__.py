"""Pictures: the weight layout drawn to scale (`inspect --plot`) and the verification report as one
self-contained HTML page (`--report-html`).

Plain SVG written by our own small code (`svg`), no plotting library: converting needs only the core
dependencies, and the pages open without network access (inline CSS, SVG and a few lines of JS).
Owns: SVG elements and a PNG encoder for heat maps (`svg`), line and bar charts (`charts`), the layout
picture of recurrent layers (`layout`), the HTML page frame (`page`), the report page rendered from the
JSON report (`report_page`), the batch plan's page (`plan_page`), and writing a picture by suffix
(`output`: .svg, .html, .png through the optional cairosvg).
May import: `rnnconvert.model`, `rnnconvert.files`, `rnnconvert.errors`.  The pages are rendered from
the JSON reports (dicts), never from the verification code: the JSON report stays the machine contract.
"""
