"""The runtime an exported project carries verbatim: reading the data, preprocessing (settings,
fitting, transforming, and the same as Keras layers) and the training helpers.

Dependency-light (NumPy, pandas, pydantic, charset-normalizer; Keras and TensorFlow imported
inside the functions that need them) and free of the rest of the engine: its modules import
one another relatively and nothing else of LayerFlow, so that a project folder works without
LayerFlow installed.

  errors     DataError: data that cannot be used, said in one line
  tables     reading CSV, TSV and Parquet tables in checked chunks, and .npz archives
  rows       Rows (a data set's rows), read_rows, and Part (some rows, as fit and transform
             read them)
  columns    a feature's values read from some rows: numbers, texts, categories, images, masks
  images     decoding image and mask files, resizing image arrays
  config     PreprocessConfig and FittedState, check_config, input_names
  dates      dates as day numbers, and the year, month, weekday and day of year derived from
             them (in NumPy or Keras ops)
  fit        fit: the state learnt on the train rows
  transform  transform and its parts, windows, input_spec
  finite     where the inputs and targets transform gives hold NaN or an infinity
  layers     the preprocessing as Keras layers, for models that take raw rows
  serving    raw inputs of some rows, and the trained model behind its preprocessing
  predictor  the Predictor: a model of raw data (in memory or an export) predicting from raw
             inputs or rows, in keras, savedmodel, tflite or onnx
  training   optimizer and schedule, compiling with each output's loss and metrics, callbacks,
             class weights, augmentation
"""
