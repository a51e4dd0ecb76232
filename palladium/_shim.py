"""Marks this ``palladium`` package as pipeforge's stand-in for Palladium (see ``__init__``)."""
