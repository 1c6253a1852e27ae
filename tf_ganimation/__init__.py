"""tf_ganimation: GANimation (Pumarola et al., ECCV 2018, arXiv:1807.09251) in TensorFlow 2 / Keras 3."""

__version__ = "0.1.0"
