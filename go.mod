module github.com/nfsindex/nfsindex

go 1.26
