"""Search: many trainings of one graph, each a trial of an Optuna study over the graph's search
space (app.graph.space), scored by a validation metric and a cost.

  spec      what a search is asked to do (objective, cost, constraints, budget), parsed and checked
  study     the study: its storage (SQLite in the workspace, or a database URL), its trials as
            rows, the best trials and the Pareto front, stop and resume
  trial     one trial: sample, build and check the trial's graph, train it as an ordinary run
            (TensorFlow is imported there only), measure its costs
  worker    the process that runs trials until the budget is spent: `python -m app.search`
"""
