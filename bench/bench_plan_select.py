"""Choose the planner's distance-error coefficient on published data other than Epoch's,
before the planner is measured on Epoch's points or on simulated laws. Prints figures;
asserts nothing.

The knob (`analysis.plan_sim.DesignProblem.distance_error`, lambda): the criterion gives a
cell at distance d_i = log10(C* / C_i) decades of compute below the target the variance
s^2 + (lambda·d_i)^2 instead of s^2, i.e. the Chinchilla form's bias is assumed to grow
with distance from the target, so small cells carry less information about it.

Protocol, declared and committed before any outcome below was computed:

- Candidate settings: lambda in {0, 0.005, 0.01, 0.02} (log loss per decade). Nothing else
  in the planner changes (prior, noise 2 %, kappa 0.5 %/decade, search, seed 0).
- Selection data (never Epoch AI's points, nor the Open-Athena rows copied from them,
  `epochai_chinchilla` and `ml_scalefit`):
  Porian et al. 2024 (`porian2024_isoflop_points.csv`), configs 4_cosine_decay and
  5_optimizer_tuning_no_decay on rw and owt2 (the configs that count FLOPs and warm-up as
  Chinchilla did); N = n_params, D = tokens, C = flops, loss.
  Open-Athena (`openathena_isoflops.csv`), source llama_3, condition exp_loss, rows not
  flagged outlier; N = params, D = tokens, C = 6·N·D.
  Five sets in all. (Marin and misfitting span under 1.6 decades: no pool 10x below a
  held-out top exists, so they are not used.)
- Split per set, as `bench_plan_epoch.py`: held out the top 10 % of runs by C (C >= its 0.9
  quantile); pool the runs with C < that threshold / 10; target N*, D* the geometric means
  of the held-out runs' N and D, C* the geometric mean of their C.
- Budgets: 1/8, 1/4 and 1/2 of the pool's compute. Design: the planner from its prior (no
  runs known), candidates = the pool, exactly as `plan_runs(None, ...)` with the setting.
- Each design is fitted with `fit_chinchilla` (100 bootstrap refits, seed 0, calibrated
  scatter) and predicts every held-out run: MAPE, coverage of the 95 % band, median width.
  A refused or degenerate fit counts as coverage 0 and is left out of the MAPE (reported).
- Rule: per setting, the mean MAPE and mean coverage over the 5 sets x 3 budgets. Chosen:
  the lowest mean MAPE among settings with mean coverage >= 0.85; if none reaches 0.85,
  the highest mean coverage. Ties (within 0.01 percentage points of MAPE) go to the smaller
  lambda.
- The chosen lambda becomes the planner's default. Then `bench_plan_epoch.py` and
  `bench_plan.py` are each run ONCE with it and reported whatever they show, beside their
  figures at lambda = 0.

    .venv/bin/python bench/bench_plan_select.py [--settings 0 0.005 0.01 0.02]
"""
