package rules

import (
	"context"
	"encoding/json"
	"fmt"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/templating"
)

// Cache keeps compiled rule versions: a version is immutable, so it is compiled once per process
// however many events it evaluates. Safe for concurrent use.
type Cache struct {
	store     *store.Store
	templates *templating.Engine
	lru       *lru.Cache[versionKey, *Compiled]
}

type versionKey struct {
	id      string
	version int
}

// NewCache returns a cache of up to size compiled versions read from st.
func NewCache(st *store.Store, templates *templating.Engine, size int) *Cache {
	if size <= 0 {
		size = 4096
	}
	c, _ := lru.New[versionKey, *Compiled](size)
	return &Cache{store: st, templates: templates, lru: c}
}

// Get returns rule id at version, compiled.
func (c *Cache) Get(ctx context.Context, id string, version int) (*Compiled, error) {
	key := versionKey{id, version}
	if r, ok := c.lru.Get(key); ok {
		return r, nil
	}
	v, err := c.store.GetRuleVersion(ctx, id, version)
	if err != nil {
		return nil, fmt.Errorf("rule %s v%d: %w", id, version, err)
	}
	r, err := CompileStored(id, version, v.Definition, c.templates)
	if err != nil {
		return nil, err
	}
	c.lru.Add(key, r)
	return r, nil
}

// CompileStored compiles a stored definition. Stored definitions passed validation when they were
// written; one that no longer compiles (a newer, stricter check) is reported, not panicked on.
func CompileStored(id string, version int, definition store.JSON, templates *templating.Engine) (*Compiled, error) {
	var def Definition
	if err := json.Unmarshal(definition, &def); err != nil {
		return nil, Permanentf("rule %s v%d: stored definition: %v", id, version, err)
	}
	r, problems := Compile(id, version, def, CompileOptions{Templates: templates})
	if len(problems) > 0 {
		return nil, Permanentf("rule %s v%d: %v", id, version, problems)
	}
	return r, nil
}
