"""Multi-run experiments: the paper's tables over seeds (`paper_tables`) and the claims they support."""
