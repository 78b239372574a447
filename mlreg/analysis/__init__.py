"""Compare, plot and report from saved CSVs. Never imports TensorFlow or Keras."""
