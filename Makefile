# Shortcuts; each target goes through dev.py, which creates .venv and installs what is needed.
.PHONY: demo test lint typecheck bench
demo:
	python3 dev.py demo
test:
	python3 dev.py test
lint:
	python3 dev.py lint
typecheck:
	python3 dev.py typecheck
bench:
	python3 dev.py bench
