"""plugwire's benchmark suite: plugwire beside its floors and its peers, in one run.

Run it with `python -m benchmarks` (`make bench`, `make bench-quick`); see README.md here.
Kept outside the package: nothing in `src/plugwire` imports it.
"""
