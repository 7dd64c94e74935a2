module github.com/kprod/kprod/chaos

go 1.26.0
