"""convolab: the classic convolutional networks, built from readable blocks, measured and trained."""
from ._registry import create_model, list_models, register_model
from .errors import ConvolabError

__version__ = "0.1.0"
__all__ = ["ConvolabError", "__version__", "create_model", "list_models", "register_model"]
