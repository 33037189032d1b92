# The two commands of the README: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
MEMES ?= data/memes/templates
# PyTorch comes first from its CPU-only index: from PyPI, pip takes the build with CUDA
# (several GB). Its own dependencies come with memeflow's, from the usual index.
# `make demo TORCH_INDEX=` leaves the choice to pip (a GPU machine).
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH := $(shell grep -o '"torch==[^"]*"' pyproject.toml | tr -d '"')

.PHONY: install demo test lint wire

$(VENV)/.torch: pyproject.toml
	python3 -m venv $(VENV)
	[ -z "$(TORCH_INDEX)" ] || $(PY) -m pip install --quiet --no-deps "$(TORCH)" --index-url $(TORCH_INDEX)
	touch $@

# The demo needs memeflow alone; the tests also every extra (about a minute more).
$(VENV)/.core: $(VENV)/.torch
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed: $(VENV)/.torch
	$(PY) -m pip install --quiet -e '.[test,notebook,onnx,ocr,milvus,openclip]'
	touch $@ $(VENV)/.core

install: $(VENV)/.installed

demo: $(VENV)/.core
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
