"""SDE Workbench: score-based generative modelling with stochastic differential equations."""

__version__ = "0.1.0"
