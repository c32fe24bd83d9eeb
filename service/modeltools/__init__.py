"""Model tooling: split (``dataset``), train, export, evaluate, calibrate, model-info, and the
Fashion-MNIST test data (``fashion_mnist``). Needs the ``models`` extra (torch, timm, onnx,
ray[train], mlflow, scikit-learn: ``pip install 'recognize[models]'``) and is never imported by
the serving path (tests/unit/test_layout.py)."""
