"""Testing a trained run: the suite, its process, the HTML report and comparing runs."""
