package console

import (
	"embed"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"time"
)

//go:embed assets
var assets embed.FS

// RefreshInterval is how often the page fetches its live part again.
const RefreshInterval = 3 * time.Second

var page = template.Must(template.New("page.html").Funcs(template.FuncMap{
	"percent": func(f float64) string { return fmt.Sprintf("%.0f%%", 100*f) },
	"width":   func(f float64) template.CSS { return template.CSS(fmt.Sprintf("width: %.1f%%", 100*min(max(f, 0), 1))) },
	"since": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05 MST")
	},
	"yesno": func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	},
	"lower":         strings.ToLower,
	"refreshMillis": func() int64 { return RefreshInterval.Milliseconds() },
}).ParseFS(assets, "assets/page.html"))

// Render writes the whole page for st.
func Render(w io.Writer, st Status) error {
	return page.ExecuteTemplate(w, "page.html", st)
}

// RenderLive writes only the page's live part (what the script swaps in).
func RenderLive(w io.Writer, st Status) error {
	return page.ExecuteTemplate(w, "live", st)
}

// Assets serves the page's stylesheet and script, under the prefix the
// page links them with (/_console/).
func Assets() http.Handler {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return http.StripPrefix("/_console/", http.FileServer(http.FS(sub)))
}
