"""Testing a trained run: the suite and its parts (settings and gates, the metrics of each
task, samples, checks, explanations), its process, the HTML report and comparing runs."""
