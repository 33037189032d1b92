# The two commands of the README: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
MEMES ?= data/memes/templates

.PHONY: install demo test lint wire

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[test,notebook,onnx,ocr,milvus]'
	touch $@

install: $(VENV)/.installed

demo: install
	test -d $(MEMES) || $(PY) data/fetch_memes.py
	$(PY) -m memeflow.cli.demo $(MEMES)

# pytest exits 5 when it collected no test: said plainly rather than failing as a crash.
test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest || { status=$$?; [ $$status -eq 5 ] && echo "pytest collected no tests"; \
		[ $$status -eq 5 ] || exit $$status; }

# The code keeps its own line style (ruff check's E/W rules), not ruff format's.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# The client's message code, made from memeflow/client/wire/memeflow_wire.proto (committed;
# run after changing the .proto). grpcio-tools matches the pinned grpcio.
wire: install
	$(PY) -m pip install --quiet grpcio-tools==1.67.1
	$(PY) -m grpc_tools.protoc -I. --python_out=. memeflow/client/wire/memeflow_wire.proto
