module github.com/knaight/knaight/plugin

go 1.24.0
