"""Truncation back-test of the near / far call on every published source, against two
trivial rules, scored source by source.

PROTOCOL (written and committed before any outcome below was computed)

Question. A task has not yet cleared its bar at the scales tried. Will it clear it within
10x of the largest scale tried ("near"), or not ("far")?

Bar. chance + 0.25 * (1 - chance): a quarter of the way from chance to perfect.

Sources and series (x is the scale the classifier sees; y the accuracy; one series per
curve, points at equal x averaged):
- lm_eval_pythia: lm-evaluation-harness files read with the importer's own `parse_file`;
  N and tokens per step from examples/lm_eval/pythia_sizes.csv, as `scaletrack import
  lm-eval --sizes` reads them; x = 6 N tokens (FLOPs); step 0 dropped (x = 0). One series
  per (model, task, metric acc | acc_norm, shot count) along training. Chance: lambada 0;
  piqa, winogrande, wsc 0.5; arc_*, sciq, logiqa, hendrycksTest-* 0.25. crows_pairs (bias
  metrics) and perplexity are not accuracies and are not used.
- pythia_v1_zero_shot: (a) one series per (model, deduped, task, metric acc | acc_norm)
  along training, x = 6 * model_size_params * tokens_seen, step 0 dropped; (b) one series
  per (deduped, task, metric) across the 8 sizes at step 143000. Chance as above.
- ukp_on_emergence_bigbench_base_models: exact_match_accuracy only (bert_score and
  edit_distance are continuous companions of the same outputs), one series per (task,
  prompt_type, n_shots) across all 11 base models sorted by params_B; x = N (parameters;
  the file has no FLOPs). Chance 0 (exact match of a generated answer).
- obsscaling_emergent_tasks: one series per (model family with >= 4 sizes, task, metric),
  BLEU left out; x = train_flops; chance from the file.
- olmo_ladder_task_bpb_acc: (a) one series per (run, task) along training, x = flops_approx,
  y = task_acc_rc; (b) one series per task across the final checkpoints of the 16 ladder
  runs and the 13B target (the 7B file holds no steps), sorted by flops_approx. Chance from
  the file.
- wei2022_table1_emergence_scales, wei_blog_bigbench_emergent_tasks: they hold the scale at
  which an ability emerged, not values against scale; there is nothing to truncate, so they
  are listed as not scorable.

Truncation. For a series of n points sorted by x and every k = 3 .. n-1 the classifier
sees the k smallest-x points. Series of more than 30 points (training trajectories) are
cut only where x_max has grown by at least 0.1 decade since the previous cut; the
classifier still sees every point up to the cut.

Truth, from the hidden points: past if a visible point already reaches the bar (not
scored: every rule sees it); near if a hidden point with x <= 10 x_max reaches the bar;
far if none within 10x does and the hidden points reach at least 10 x_max, or one crosses
only beyond 10x; otherwise unknown (not scored).

Rules compared, on the near/far cases:
- classifier: `classify_task(x, y, chance=chance, threshold=bar, n_bootstrap=0)` with the
  library defaults; its label (near | far).
- always far.
- line through the last 2 points: the straight line through the last two visible points in
  (log10 x, y), extrapolated; near if it reaches the bar at x <= 10 x_max, far otherwise
  (flat or falling lines included).

Score per source: share of near/far cases labelled right (accuracy), for each rule; the
margin = classifier - the better of the two baselines, in points; target >= 15 points on
every source. Also printed: cases, series, near share, near recall, balanced accuracy, and
the breakdown by series kind. Every series is scored once; no source is pooled with
another.

Settings and how they are chosen. Each series is put in a half by the parity of
zlib.crc32 of its name (source/kind/keys): even = selection half, odd = scored half.
Any change to the classifier's settings (trend points 2, 3, 4, 6, 8; trend in logit
progress or in raw metric) is chosen on the selection halves only: the candidate with the
highest mean margin over the scorable sources wins; candidates within 1 point of the best
tie and go to the library's current default first, then fewer points, then logit.
The reported figures are the scored halves with the chosen setting (all series are also
printed, marked as including the selection half).

    .venv/bin/python bench/bench_emergence_sources.py [--data ../shared/data] [--select-only]
"""
