"""AU-labelled faces on disk and in tf.data: the three folder layouts, AU tables, TFRecords,
the training and evaluation pipelines, and training sets made from photos."""
