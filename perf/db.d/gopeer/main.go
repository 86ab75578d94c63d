// SPDX-License-Identifier: MIT

// gopeer: the Go stack perf/db measures coil's Postgres client against, written the way a Go
// team would write it for production: net/http + chi v5 for routing, a pgx v4 pool (pgxpool,
// pgx's default statement cache: every query is prepared once per connection), encoding/json,
// a 5 s context timeout on every query. It serves HttpArena's database endpoints:
//
//	GET  /async-db?min=&max=&limit=     items with price BETWEEN min AND max, LIMIT limit
//	GET  /crud/items?category=&page=&limit=
//	GET  /crud/items/{id}               cache-aside, 200 ms absolute TTL, X-Cache: HIT|MISS
//	POST /crud/items                    upsert {id,name,category,price,quantity}: 201
//	PUT  /crud/items/{id}               update {name,category,price,quantity}: 200, 404
//	GET  /baseline11?a=&b=              a+b as text, for readiness checks
//
// Usage: gopeer -addr 127.0.0.1:8080 [-pool N], with DATABASE_URL set (postgres://...) and the
// pool size from -pool, else DATABASE_MAX_CONN, else 8. It is built from Debian's packages only
// (perf/db.d/build-gopeer); perf/db runs it with GOMAXPROCS=1 on one cpu.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v4"
	"github.com/jackc/pgx/v4/pgxpool"
)

const (
	queryTimeout = 5 * time.Second
	cacheTTL     = 200 * time.Millisecond
	maxBody      = 1 << 20

	itemColumns = "id, name, category, price, quantity, active, tags, rating_score, rating_count"

	sqlAsyncDB = "SELECT " + itemColumns + " FROM items WHERE price BETWEEN $1 AND $2 LIMIT $3"
	sqlList    = "SELECT " + itemColumns + " FROM items WHERE category = $1 ORDER BY id LIMIT $2 OFFSET $3"
	sqlGet     = "SELECT " + itemColumns + " FROM items WHERE id = $1"
	sqlUpsert  = "INSERT INTO items (id, name, category, price, quantity, active, tags, rating_score, rating_count) " +
		"VALUES ($1, $2, $3, $4, $5, true, '[]', 0, 0) " +
		"ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, category = EXCLUDED.category, " +
		"price = EXCLUDED.price, quantity = EXCLUDED.quantity RETURNING " + itemColumns
	sqlUpdate = "UPDATE items SET name = $2, category = $3, price = $4, quantity = $5 WHERE id = $1 " +
		"RETURNING " + itemColumns
)

type Rating struct {
	Score int `json:"score"`
	Count int `json:"count"`
}

type Item struct {
	ID       int      `json:"id"`
	Name     string   `json:"name"`
	Category string   `json:"category"`
	Price    int      `json:"price"`
	Quantity int      `json:"quantity"`
	Active   bool     `json:"active"`
	Tags     []string `json:"tags"`
	Rating   Rating   `json:"rating"`
}

type scanner interface {
	Scan(dest ...interface{}) error
}

func scanItem(row scanner) (Item, error) {
	var it Item
	err := row.Scan(&it.ID, &it.Name, &it.Category, &it.Price, &it.Quantity, &it.Active,
		&it.Tags, &it.Rating.Score, &it.Rating.Count)
	if it.Tags == nil {
		it.Tags = []string{}
	}
	return it, err
}

// itemCache holds encoded item bodies for cacheTTL from when they were read (absolute, not
// refreshed by hits). A sweeper drops expired entries so that the map does not keep every id
// ever asked for.
type itemCache struct {
	mu      sync.Mutex
	entries map[int]cacheEntry
}

type cacheEntry struct {
	body    []byte
	expires time.Time
}

func newItemCache() *itemCache {
	return &itemCache{entries: make(map[int]cacheEntry)}
}

func (c *itemCache) get(id int) ([]byte, bool) {
	c.mu.Lock()
	e, ok := c.entries[id]
	c.mu.Unlock()
	if !ok || !time.Now().Before(e.expires) {
		return nil, false
	}
	return e.body, true
}

func (c *itemCache) put(id int, body []byte) {
	c.mu.Lock()
	c.entries[id] = cacheEntry{body: body, expires: time.Now().Add(cacheTTL)}
	c.mu.Unlock()
}

func (c *itemCache) invalidate(id int) {
	c.mu.Lock()
	delete(c.entries, id)
	c.mu.Unlock()
}

func (c *itemCache) sweep(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			c.mu.Lock()
			for id, e := range c.entries {
				if !now.Before(e.expires) {
					delete(c.entries, id)
				}
			}
			c.mu.Unlock()
		}
	}
}

type server struct {
	db    *pgxpool.Pool
	cache *itemCache
}

// writeJSON answers with v encoded, with a Content-Length (no chunked encoding).
func writeJSON(w http.ResponseWriter, status int, v interface{}) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encoding failed", http.StatusInternalServerError)
		return
	}
	writeBody(w, status, body)
}

func writeBody(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// intParam is the query parameter as an integer, or def when absent or not a number.
func intParam(r *http.Request, name string, def int) int {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return def
	}
	return n
}

func clamp(n, lo, hi int) int {
	if n < lo {
		return lo
	}
	if n > hi {
		return hi
	}
	return n
}

// itemID is the {id} path segment as a Postgres integer ("00042" is 42); false when it is not
// one, which no item can have.
func itemID(r *http.Request) (int, bool) {
	n, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 32)
	return int(n), err == nil
}

func queryItems(ctx context.Context, db *pgxpool.Pool, sql string, args ...interface{}) ([]Item, error) {
	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	items := make([]Item, 0, 16)
	for rows.Next() {
		it, err := scanItem(rows)
		if err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	return items, rows.Err()
}

type asyncDBResponse struct {
	Items []Item `json:"items"`
	Count int    `json:"count"`
}

// GET /async-db: a failing or unreachable database answers an empty list, as HttpArena asks.
func (s *server) asyncDB(w http.ResponseWriter, r *http.Request) {
	min := intParam(r, "min", 10)
	max := intParam(r, "max", 50)
	limit := clamp(intParam(r, "limit", 50), 1, 50)
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	items, err := queryItems(ctx, s.db, sqlAsyncDB, min, max, limit)
	if err != nil {
		items = []Item{}
	}
	writeJSON(w, http.StatusOK, asyncDBResponse{Items: items, Count: len(items)})
}

type listResponse struct {
	Items []Item `json:"items"`
	Total int    `json:"total"`
	Page  int    `json:"page"`
	Limit int    `json:"limit"`
}

// GET /crud/items?category=&page=&limit=
func (s *server) listItems(w http.ResponseWriter, r *http.Request) {
	category := r.URL.Query().Get("category")
	if category == "" {
		category = "electronics"
	}
	page := intParam(r, "page", 1)
	if page < 1 {
		page = 1
	}
	limit := clamp(intParam(r, "limit", 10), 1, 50)
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	items, err := queryItems(ctx, s.db, sqlList, category, limit, int64(page-1)*int64(limit))
	if err != nil {
		writeError(w, http.StatusInternalServerError, "database error")
		return
	}
	writeJSON(w, http.StatusOK, listResponse{Items: items, Total: len(items), Page: page, Limit: limit})
}

// GET /crud/items/{id}: cache-aside.
func (s *server) getItem(w http.ResponseWriter, r *http.Request) {
	id, ok := itemID(r)
	if !ok {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	if body, hit := s.cache.get(id); hit {
		w.Header().Set("X-Cache", "HIT")
		writeBody(w, http.StatusOK, body)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	it, err := scanItem(s.db.QueryRow(ctx, sqlGet, id))
	if errors.Is(err, pgx.ErrNoRows) {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "database error")
		return
	}
	body, err := json.Marshal(it)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encoding failed")
		return
	}
	s.cache.put(id, body)
	w.Header().Set("X-Cache", "MISS")
	writeBody(w, http.StatusOK, body)
}

// The fields a client sends; pointers tell a missing field from a zero.
type itemInput struct {
	ID       *int64  `json:"id"`
	Name     *string `json:"name"`
	Category *string `json:"category"`
	Price    *int64  `json:"price"`
	Quantity *int64  `json:"quantity"`
}

func fitsInt4(n int64) bool { return n >= -1<<31 && n < 1<<31 }

// readInput decodes the body; "" when it is fine, else why it is not (a 400).
func readInput(w http.ResponseWriter, r *http.Request, in *itemInput, wantID bool) string {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	if err := dec.Decode(in); err != nil {
		return "invalid JSON"
	}
	if (wantID && in.ID == nil) || in.Name == nil || in.Category == nil || in.Price == nil ||
		in.Quantity == nil {
		return "missing field"
	}
	if (wantID && !fitsInt4(*in.ID)) || !fitsInt4(*in.Price) || !fitsInt4(*in.Quantity) {
		return "number out of range"
	}
	return ""
}

// POST /crud/items: upsert; active, tags and rating are set on insert and kept on update.
func (s *server) createItem(w http.ResponseWriter, r *http.Request) {
	var in itemInput
	if why := readInput(w, r, &in, true); why != "" {
		writeError(w, http.StatusBadRequest, why)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	it, err := scanItem(s.db.QueryRow(ctx, sqlUpsert, *in.ID, *in.Name, *in.Category, *in.Price, *in.Quantity))
	if err != nil {
		writeError(w, http.StatusInternalServerError, "database error")
		return
	}
	s.cache.invalidate(it.ID)
	writeJSON(w, http.StatusCreated, it)
}

// PUT /crud/items/{id}
func (s *server) updateItem(w http.ResponseWriter, r *http.Request) {
	id, ok := itemID(r)
	if !ok {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	var in itemInput
	if why := readInput(w, r, &in, false); why != "" {
		writeError(w, http.StatusBadRequest, why)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	it, err := scanItem(s.db.QueryRow(ctx, sqlUpdate, id, *in.Name, *in.Category, *in.Price, *in.Quantity))
	if errors.Is(err, pgx.ErrNoRows) {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "database error")
		return
	}
	s.cache.invalidate(id)
	writeJSON(w, http.StatusOK, it)
}

// GET /baseline11?a=&b=
func baseline(w http.ResponseWriter, r *http.Request) {
	sum := intParam(r, "a", 0) + intParam(r, "b", 0)
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprint(w, sum)
}

func (s *server) routes() http.Handler {
	r := chi.NewRouter()
	r.Get("/baseline11", baseline)
	r.Get("/async-db", s.asyncDB)
	r.Route("/crud/items", func(r chi.Router) {
		r.Get("/", s.listItems)
		r.Post("/", s.createItem)
		r.Get("/{id}", s.getItem)
		r.Put("/{id}", s.updateItem)
	})
	return r
}

// openPool connects all of the pool's connections up front; when the database cannot be
// reached it still returns a pool (connecting on demand) so that the server serves, and
// /async-db answers its empty list, until the database comes.
func openPool(url string, size int) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = int32(size)
	cfg.MinConns = int32(size)
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	pool, err := pgxpool.ConnectConfig(ctx, cfg)
	if err == nil {
		return pool, nil
	}
	log.Printf("gopeer: database not reachable yet (%v): connecting on demand", err)
	cfg.LazyConnect = true
	return pgxpool.ConnectConfig(context.Background(), cfg)
}

func main() {
	log.SetFlags(0)
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	poolSize := 8
	if v := os.Getenv("DATABASE_MAX_CONN"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			log.Fatalf("gopeer: DATABASE_MAX_CONN=%q: want a positive number", v)
		}
		poolSize = n
	}
	flag.IntVar(&poolSize, "pool", poolSize, "database connections (default: DATABASE_MAX_CONN, else 8)")
	flag.Parse()
	if poolSize < 1 {
		log.Fatal("gopeer: -pool must be at least 1")
	}
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		log.Fatal("gopeer: set DATABASE_URL (postgres://user:password@host:port/db)")
	}

	pool, err := openPool(url, poolSize)
	if err != nil {
		log.Fatalf("gopeer: DATABASE_URL: %v", err)
	}
	defer pool.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s := &server{db: pool, cache: newItemCache()}
	go s.cache.sweep(ctx, time.Second)

	srv := &http.Server{
		Addr:              *addr,
		Handler:           s.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Printf("gopeer: listening on %s, %d database connections", *addr, poolSize)
	select {
	case err := <-errc:
		log.Fatalf("gopeer: %v", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		log.Printf("gopeer: shutdown: %v", err)
	}
}
