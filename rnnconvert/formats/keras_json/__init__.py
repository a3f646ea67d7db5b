"""Keras's layer JSON and weight lists, shared by the two formats that carry them: Keras files (`keras`)
and TF.js layers models (`tfjs`, whose `modelTopology` is a Keras model config).

Owns: the config as one chain of layers (`graph`), config + weights -> canonical layers (`layers`,
`layers_front`, `activations`), and the way back: canonical layers planned as Keras layers (`plan`,
`specs`, `frontend_writer`) and serialised as Keras configs with their weight order (`config`).
Nothing here touches a file.  May import: `rnnconvert.model`, `rnnconvert.errors`; never a format
package (`keras`, `tfjs`, ...), which import this one.
"""
