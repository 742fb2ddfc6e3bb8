package sql

import (
	"testing"

	"github.com/kvnode/kvnode/sql/catalog"
	"github.com/kvnode/kvnode/sql/types"
)

// TestTableCacheKeysDatabaseAndName: tables of the same name in two
// databases are cached side by side, so using one does not rebuild the
// other's info; a new descriptor of a table replaces its entry.
func TestTableCacheKeysDatabaseAndName(t *testing.T) {
	desc := func(id int64, db string) *catalog.TableDescriptor {
		return &catalog.TableDescriptor{ID: id, Name: "t", Database: db,
			Columns: []catalog.ColumnDescriptor{{ID: 1, Name: "k", Type: types.Int}}, PrimaryKey: []int32{1}}
	}
	var c tableCache
	a, b := desc(101, ""), desc(102, "app")
	ia, err := c.infoFor(a)
	if err != nil {
		t.Fatal(err)
	}
	ib, err := c.infoFor(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if ti, _ := c.infoFor(a); ti != ia {
			t.Fatalf("defaultdb's t was rebuilt after app's t was used")
		}
		if ti, _ := c.infoFor(b); ti != ib {
			t.Fatalf("app's t was rebuilt after defaultdb's t was used")
		}
	}
	a2 := desc(101, "")
	if ti, _ := c.infoFor(a2); ti == ia || ti.desc != a2 {
		t.Fatal("a new descriptor of t did not replace its cached info")
	}
}
