"""Multi-run experiments: the paper's tables over seeds (`paper_tables`), each run's results kept in the
repository (`results`), and the claims they support (`claims`, with the intervals of `intervals`)."""
