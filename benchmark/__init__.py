"""fusebench: benchmark multimodal fusion strategies for accuracy, robustness and cost."""

__version__ = "0.1.0"
