"""What every evoboard package shares and nothing else: the version, the exceptions, lazy loading.

``envs``, ``agents`` and ``suite`` may import from here; this package imports none of them.
"""

__version__ = "0.1.0"
