package api

import (
	"embed"
	"net/http"
)

// uiFS holds the status page: index.html, served at /, and the files it
// loads from /ui/. The page polls GET /v1/status; see doc.go for the token.
//
//go:embed ui
var uiFS embed.FS

// uiCSP confines the page to its own files and the API: with a token in
// its URL, it loads nothing from elsewhere and is not framed.
const uiCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// uiFile serves the page's file name.
func uiFile(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serveUI(w, r, name)
	})
}

// uiFiles serves /ui/{file}.
func uiFiles() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serveUI(w, r, r.PathValue("file"))
	})
}

func serveUI(w http.ResponseWriter, r *http.Request, name string) {
	h := w.Header()
	h.Set("Content-Security-Policy", uiCSP)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
	http.ServeFileFS(w, r, uiFS, "ui/"+name)
}
