package config

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/viper"
)

// The table steps one version at a time up to CurrentVersion.
func TestMigrationTable(t *testing.T) {
	for i, m := range migrations {
		if m.to != i+1 {
			t.Errorf("migrations[%d] goes to version %d, want %d", i, m.to, i+1)
		}
	}
	if len(migrations) != CurrentVersion {
		t.Errorf("%d migrations, CurrentVersion %d: the last must reach it", len(migrations), CurrentVersion)
	}
}

// Every old file kept in testdata (vN.yaml, written for version N) still
// loads, and comes out at CurrentVersion.
func TestMigrationFixtures(t *testing.T) {
	isolate(t)
	files, err := filepath.Glob(filepath.Join("testdata", "v*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	have := map[int]bool{}
	for _, f := range files {
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "v"), ".yaml"))
		if err != nil {
			t.Fatalf("%s: name must be vN.yaml", f)
		}
		have[n] = true
		c, err := Load(viper.New(), f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if c.Version != CurrentVersion {
			t.Errorf("%s: version %d after migration", f, c.Version)
		}
	}
	for v := 0; v <= CurrentVersion; v++ {
		if !have[v] {
			t.Errorf("testdata/v%d.yaml is missing: keep a file of every version", v)
		}
	}
}

func TestFixtureValues(t *testing.T) {
	isolate(t)
	c, err := Load(viper.New(), filepath.Join("testdata", "v0.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Log.Level != "debug" || len(c.P2P.Listen) != 1 || c.API.Listen != "127.0.0.1:5180" {
		t.Errorf("v0: %+v", c)
	}
	c, err = Load(viper.New(), filepath.Join("testdata", "v1.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir() != "/var/lib/expertd" || c.P2P.DHT.Mode != "server" || c.Store.Quota != 100e9 || c.Fetch.MinRate != 1<<20 || c.Compress.Alpha != "1" {
		t.Errorf("v1: %+v", c)
	}
}

func TestFutureVersionRefused(t *testing.T) {
	isolate(t)
	body := "version: " + strconv.Itoa(CurrentVersion+1) + "\n"
	path := filepath.Join(t.TempDir(), "new.yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(viper.New(), path)
	assertKeyError(t, body, err, "version", "newer than this expertd understands")
}

func TestMigrateSteps(t *testing.T) {
	var ran []int
	step := func(to int) migration {
		return migration{to: to, convert: func(m map[string]any) error {
			ran = append(ran, to)
			if to == 2 { // as if version 2 renamed api.addr to api.listen
				if api, ok := m["api"].(map[string]any); ok {
					api["listen"] = api["addr"]
					delete(api, "addr")
				}
			}
			return nil
		}}
	}
	table := []migration{step(1), step(2), step(3)}

	m := map[string]any{"version": 1, "api": map[string]any{"addr": "127.0.0.1:1"}}
	if err := migrateWith(m, table, 3); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ran, []int{2, 3}) || m["version"] != 3 {
		t.Errorf("ran %v, version %v", ran, m["version"])
	}
	if api := m["api"].(map[string]any); api["listen"] != "127.0.0.1:1" || api["addr"] != nil {
		t.Errorf("api = %v", api)
	}

	ran = nil
	m = map[string]any{} // no version: 0, every step runs
	if err := migrateWith(m, table, 3); err != nil || !slices.Equal(ran, []int{1, 2, 3}) || m["version"] != 3 {
		t.Errorf("unversioned: ran %v, version %v, %v", ran, m["version"], err)
	}

	if err := migrateWith(map[string]any{"version": 4}, table, 3); err == nil {
		t.Error("version 4 of 3 migrated")
	}
	if err := migrateWith(map[string]any{"version": -1}, table, 3); err == nil {
		t.Error("version -1 migrated")
	}
}
