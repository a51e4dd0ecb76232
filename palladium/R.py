"""Palladium's ``palladium.R``, served by pipeforge (the names: pipeforge/palladium_names.py)."""

from pipeforge.palladium_compat.names import module_getattr, module_names

__getattr__ = module_getattr(__name__)
__all__ = module_names(__name__)
