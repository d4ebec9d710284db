module github.com/k-sone/critbitgo

go 1.21
