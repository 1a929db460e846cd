# What a contributor runs. `make test` is the README's test command; `make ci`
# is what CI runs (.ci/run).
.PHONY: build test race lint fuzz bench ci

build:
	go build ./...

test:
	go test ./...

race:
	go test -race -short ./node/...

lint:
	gofmt -l $$(git ls-files '*.go')
	go vet ./...
	go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

# make fuzz NAME=FuzzReader PKG=./compress [TIME=60s]
fuzz:
	go test -run '^$$' -fuzz '^$(NAME)$$' -fuzztime $(or $(TIME),60s) -fuzzminimizetime 2s $(PKG)

bench:
	scripts/bench.sh

ci:
	.ci/run
