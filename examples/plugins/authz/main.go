// Command authz is an example Gatehouse plugin: a validate hook that
// accepts HMAC-signed bearer tokens (JWT, HS256) or API keys from a file,
// labels the request with its user and tier, and denies with 401 (missing,
// unknown or invalid credentials) or 403 (a tier not allowed on the path).
// Its decisions are cacheable per credentials (plugin.CacheFor).
//
//	plugins:
//	  - name: authz
//	    path: /usr/lib/gatehouse/authz
//	    config:
//	      secret_file: /etc/gatehouse/authz.key
//	      keys_file: /etc/gatehouse/api-keys.txt
//	      rules: [{path_prefix: /admin, tiers: [internal]}]
package main

import "github.com/gatehouse/gatehouse/sdk/plugin"

func main() { plugin.Serve(&authz{}) }
