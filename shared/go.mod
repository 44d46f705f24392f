module github.com/knaight/knaight/shared

go 1.24.0
