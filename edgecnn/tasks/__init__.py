"""Small real tasks with labelled data bundled by a library (no download), for measuring accuracy.

``edgecnn.tasks.digits``: LeNet-5 (LeCun et al., 1998) on scikit-learn's copy of the UCI handwritten
digits (Alpaydin & Kaynak, 1998). Used by ``edgecnn optimize lenet5``, ``tools/digits.py`` and the
quantization tests. scikit-learn is the ``digits`` extra; torch is imported only to train.
"""
