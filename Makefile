# hpc-kmeans — `make` builds bin/kmeans; `make test`, `make bench`, `make DEBUG=1`.
# On clusters override the toolchain:  make CC=mpicc HDF5_CFLAGS=... HDF5_LIBS=...
CC       ?= mpicc
ifeq ($(CC),cc)
CC       := mpicc
endif
PYTHON   ?= /usr/bin/python3
PREFIX   ?= /usr/local
DEBUG    ?= 0

HDF5_CFLAGS ?= $(shell pkg-config --cflags hdf5-openmpi 2>/dev/null)
HDF5_LIBS   ?= $(shell pkg-config --libs hdf5-openmpi 2>/dev/null)

ifeq ($(DEBUG),1)
OPTFLAGS ?= -O0 -g -fsanitize=address,undefined -fno-omit-frame-pointer
else
OPTFLAGS ?= -O3 -march=native
endif
CFLAGS  += -std=gnu11 -Wall -Wextra -fopenmp $(OPTFLAGS) -Iinclude $(HDF5_CFLAGS)
LDLIBS  += $(HDF5_LIBS) -lm -pthread

SRC  := $(wildcard src/*.c)
OBJ  := $(SRC:src/%.c=build/%.o)
LIB  := $(filter-out build/main.o,$(OBJ))
UNIT := $(patsubst tests/unit/%.c,build/tests/%,$(wildcard tests/unit/*.c))

.PHONY: all test unit integration slurm-test bench bench-pruned kbench rowbench demo clean install
all: bin/kmeans

bin/kmeans: $(OBJ)
	@mkdir -p bin
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

build/%.o: src/%.c $(wildcard include/*.h) src/kernels_tmpl.h
	@mkdir -p build
	$(CC) $(CFLAGS) -c -o $@ $<

# The pruned strategies test every row's bounds in a loop of selects on doubles; GCC
# if-converts it (and so vectorises it, with gathers) only when it may assume that
# floating point does not trap. Values are unchanged: rounding stays IEEE.
build/hamerly.o build/yinyang.o: CFLAGS += -fno-trapping-math

build/tests/%: tests/unit/%.c $(LIB)
	@mkdir -p build/tests
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

# build/kbench and build/rowbench are built (not run) so that a change of the kernels'
# API cannot leave them broken
unit: $(UNIT) build/kbench build/rowbench
	@for t in $(UNIT); do OMP_NUM_THREADS=2 ./$$t || exit 1; done

integration: bin/kmeans
	PYTHON=$(PYTHON) bash tests/integration/run.sh

# a real SLURM started in a temporary directory; skipped with a message if absent
slurm-test: bin/kmeans
	PYTHON=$(PYTHON) bash tests/slurm/run.sh

test: unit integration slurm-test

demo:
	bash scripts/demo.sh

build/kbench: scripts/kbench.c scripts/fma_peak.h $(LIB)
	$(CC) $(CFLAGS) -o $@ $(filter-out %.h,$^) $(LDLIBS)

build/rowbench: scripts/rowbench.c $(LIB)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

rowbench: build/rowbench
	OMP_NUM_THREADS=1 ./build/rowbench 20000 16
	OMP_NUM_THREADS=1 ./build/rowbench 784 256 70000

kbench: build/kbench
	OMP_NUM_THREADS=1 ./build/kbench 32 64
	OMP_NUM_THREADS=2 ./build/kbench 32 64
	OMP_NUM_THREADS=1 ./build/kbench 32 256
	OMP_NUM_THREADS=2 ./build/kbench 256 64

bench: bin/kmeans build/roofs
	$(PYTHON) scripts/bench.py
	$(PYTHON) scripts/bench_kernel.py
	$(PYTHON) scripts/bench_outofcore.py
	$(PYTHON) scripts/bench_init.py
	$(PYTHON) scripts/bench_pruned.py

# this machine's FMA peak and streaming-read rate, for bench_kernel.py
build/roofs: scripts/roofs.c scripts/fma_peak.h
	@mkdir -p build
	$(CC) $(CFLAGS) -o $@ $<

# exact pruning vs Lloyd vs scikit-learn (Lloyd, Elkan) to convergence: tens of minutes
bench-pruned: bin/kmeans
	$(PYTHON) scripts/bench_pruned.py

install: bin/kmeans
	install -d $(PREFIX)/bin
	install -m 755 bin/kmeans $(PREFIX)/bin/kmeans

clean:
	rm -rf build bin
