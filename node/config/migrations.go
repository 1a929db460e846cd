package config

// CurrentVersion is the configuration format this build reads and writes.
const CurrentVersion = 1

// A migration upgrades a file's settings from version to-1 to version to.
type migration struct {
	to      int
	convert func(settings map[string]any) error
}

// migrations run in order on a file older than CurrentVersion. A file
// without a version key is version 0, written before versions existed.
// To change the format: bump CurrentVersion, append a migration that turns
// the previous version's keys into the new ones, and keep a file of the
// previous version in testdata/ (TestMigrationFixtures loads each one).
var migrations = []migration{
	{to: 1, convert: migrateToV1},
}

// migrateToV1: version 1 is the first format; unversioned files use its keys.
func migrateToV1(map[string]any) error { return nil }

// migrate upgrades settings (a file's top-level map) to CurrentVersion in place.
func migrate(settings map[string]any) error {
	return migrateWith(settings, migrations, CurrentVersion)
}

func migrateWith(settings map[string]any, table []migration, current int) error {
	version, err := fileVersion(settings, current)
	if err != nil {
		return err
	}
	if version > current {
		return keyErr("version", "%d is newer than this expertd understands (%d): upgrade expertd", version, current)
	}
	for _, m := range table {
		if m.to <= version {
			continue
		}
		if err := m.convert(settings); err != nil {
			return keyErr("version", "migrating from %d to %d: %w", m.to-1, m.to, err)
		}
		version = m.to
		settings["version"] = version
	}
	settings["version"] = version
	return nil
}

func fileVersion(settings map[string]any, current int) (int, error) {
	raw, ok := settings["version"]
	if !ok || raw == nil {
		return 0, nil
	}
	v, ok := raw.(int)
	if !ok || v < 0 {
		return 0, keyErr("version", "must be a whole number from 0 to %d, got %v", current, raw)
	}
	return v, nil
}
