package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
)

// SearchAttributes are the custom search attributes the interpreter upserts.
var SearchAttributes = map[string]enumspb.IndexedValueType{
	SearchDefinitionID.GetName():      enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	SearchDefinitionVersion.GetName(): enumspb.INDEXED_VALUE_TYPE_INT,
	SearchPriority.GetName():          enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	SearchTenantID.GetName():          enumspb.INDEXED_VALUE_TYPE_KEYWORD,
}

// RegisterSearchAttributes registers the interpreter's search attributes on the namespace
// unless they are there already, and reports whether it added any. It goes through the
// operator service, so it works on the embedded server (SQL visibility) and on a real cluster
// alike; concurrent callers (API and worker processes starting together) are fine.
//
// Attributes just added are usable once the server's namespace caches refresh (10 s by default;
// the embedded server refreshes every second): until then an upsert fails the workflow task,
// which Temporal retries. Callers that added some wait that long before starting a worker.
func RegisterSearchAttributes(ctx context.Context, c client.Client, namespace string) (added bool, err error) {
	list, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return false, fmt.Errorf("list search attributes: %w", err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for name, typ := range SearchAttributes {
		existing, ok := list.GetCustomAttributes()[name]
		switch {
		case !ok:
			missing[name] = typ
		case existing != typ:
			return false, fmt.Errorf("search attribute %s is registered as %s, the interpreter needs %s", name, existing, typ)
		}
	}
	if len(missing) == 0 {
		return false, nil
	}
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace: namespace, SearchAttributes: missing,
	})
	var exists *serviceerror.AlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return false, fmt.Errorf("register search attributes %v: %w", keys(missing), err)
	}
	return true, nil
}

func keys(m map[string]enumspb.IndexedValueType) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// SearchAttributeNames lists the interpreter's search attributes, sorted.
func SearchAttributeNames() []string {
	names := keys(SearchAttributes)
	sort.Strings(names)
	return names
}
