# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format translations bench soak fuzz clean

.venv/.installed: requirements.txt requirements-dev.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

run: $(STAMP)
	APP_ENV=development $(BIN)/python wsgi.py

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Server text (app/i18n.py): collect the msgids from app/, merge them into the
# Chinese catalogue, compile it. A new msgid arrives with an empty translation:
# write the Chinese in the .po and run it again. The .mo is shipped in git.
POT := $(VENV)/messages.pot
translations: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k _l --sort-output --add-location=file -o $(POT) app
	$(BIN)/pybabel update -i $(POT) -d app/translations -l zh_Hans --no-fuzzy-matching \
		--ignore-pot-creation-date --init-missing --ignore-obsolete
	$(BIN)/pybabel compile -d app/translations --statistics

bench: $(STAMP)
	$(BIN)/python bench/run.py
	$(BIN)/python bench/quota_overhead.py

# docs/reliability.md: the long runs. -s shows each FIGURE line.
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q -s tests/reliability tests/test_images.py

soak: $(STAMP)
	NB_SOAK=1 $(BIN)/python -m pytest -q -s tests/reliability/test_soak.py

clean:
	rm -rf $(VENV) .pytest_cache
