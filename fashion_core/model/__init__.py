"""CLIP checkpoint resolution (``resolve``) and the encoders: the interface and what the runtimes share without
torch (``base``, ``pixels``), the torch runtime (``encoder``, ``preprocess``), the ONNX Runtime one
(``onnx_encoder``) and its export (``onnx_export``), and the model card (``card``)."""
