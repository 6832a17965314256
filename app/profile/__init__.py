"""Profiling: where a graph's time and memory go, per node (measure: TensorFlow; memory and fit:
pure Python; profiler: the report), and the profiling process the Model page starts (launch)."""
