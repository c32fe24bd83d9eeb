"""Recognize: vehicle model recognition for dealer audit photos.

Public surface: the settings, the error tree, the pure pieces (VIN decoder, imaging, verdict)
and the Serve application builder (``service.app:build_app``).
"""

__version__ = "0.1.0"
