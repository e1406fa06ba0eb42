# Thin aliases for ./dev, for those who type make.
.PHONY: run test setup
run:
	./dev run
test:
	./dev test
setup:
	./dev setup
