module github.com/knaight/knaight/plugin

go 1.24.0

require (
	github.com/knaight/knaight/shared v0.0.0
	github.com/proxy-wasm/proxy-wasm-go-sdk v0.0.0-20260105142703-44c7d5847745
)

require (
	github.com/stretchr/testify v1.11.1 // indirect
	github.com/tetratelabs/wazero v1.7.2 // indirect
)

replace github.com/knaight/knaight/shared => ../shared
