"""Model tooling: export (and, later, training and evaluation). Needs the ``models`` extra
(torch, timm, onnx: ``pip install 'recognize[models]'``) and is never imported by the serving
path (tests/unit/test_layout.py)."""
