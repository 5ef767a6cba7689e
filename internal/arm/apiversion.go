package arm

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
)

// APIVersions are the api-versions a route serves: either a list, or every
// dated version (Microsoft.Resources, whose shapes have not changed for
// what Slipway serves).
type APIVersions struct {
	list []string
	// dated accepts any well-formed date not after the newest listed.
	dated bool
}

// Versions serves exactly the versions given, newest last.
func Versions(v ...string) APIVersions { return APIVersions{list: v} }

// DatedVersions serves every well-formed api-version up to and including
// newest.
func DatedVersions(newest string) APIVersions {
	return APIVersions{list: []string{newest}, dated: true}
}

// Plus is the union of two sets of versions.
func (a APIVersions) Plus(b APIVersions) APIVersions {
	return APIVersions{list: append(slices.Clone(a.list), b.list...), dated: a.dated || b.dated}
}

var dateVersion = regexp.MustCompile(`^(\d{4})-(\d{2})-(\d{2})(-preview)?$`)

func (a APIVersions) check(v string) error {
	if v == "" {
		return BadRequest("MissingApiVersionParameter", "", "The api-version query parameter (?api-version=) is required for all requests.")
	}
	if slices.Contains(a.list, v) {
		return nil
	}
	if a.dated {
		m := dateVersion.FindStringSubmatch(v)
		newest := slices.Max(a.list)
		if m != nil && m[2] >= "01" && m[2] <= "12" && m[3] >= "01" && m[3] <= "31" && strings.TrimSuffix(v, "-preview") <= newest {
			return nil
		}
		return BadRequest("InvalidApiVersionParameter", "", "The api-version '%s' is invalid.", v)
	}
	return BadRequest("InvalidApiVersionParameter", "", "The api-version '%s' is invalid. The supported versions are '%s'.", v, strings.Join(a.list, ","))
}

// APIVersion is the request's api-version. ARM reads the parameter's name
// case-insensitively.
func APIVersion(r *http.Request) string {
	for k, v := range r.URL.Query() {
		if strings.EqualFold(k, "api-version") && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}
