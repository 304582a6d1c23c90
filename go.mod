module github.com/cityscreen/cityscreen

go 1.26.8

require (
	github.com/influxdata/line-protocol/v2 v2.2.1
	github.com/tidwall/gjson v1.20.2
	go.yaml.in/yaml/v3 v3.0.6
)

require (
	github.com/google/go-cmp v0.7.0 // indirect
	github.com/kr/pretty v0.3.1 // indirect
	github.com/tidwall/match v1.1.1 // indirect
	github.com/tidwall/pretty v1.3.0 // indirect
)
