# copyscope — the two commands a newcomer needs:
#   make demo   set everything up, run register → check → report on the built-in samples
#   make test   run the whole test suite
.PHONY: setup demo test bench bench-accuracy bench-speed clean

setup:
	bash scripts/setup.sh

demo: setup
	.venv/bin/copyscope demo --out demo-out

test: setup
	.venv/bin/python -m pytest -n 2 -q

bench: bench-accuracy bench-speed

bench-accuracy: setup
	.venv/bin/python benchmarks/text_accuracy.py

bench-speed: setup
	.venv/bin/python benchmarks/text_throughput.py
	.venv/bin/python benchmarks/registry_scale.py

clean:
	rm -rf demo-out .pytest_cache
