# Shortcuts; each target goes through dev.py, which creates .venv and installs what is needed.
.PHONY: demo test lint typecheck
demo:
	python3 dev.py demo
test:
	python3 dev.py test
lint:
	python3 dev.py lint
typecheck:
	python3 dev.py typecheck
