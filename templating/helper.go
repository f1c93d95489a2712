package templating

import (
	"encoding/json"

	"github.com/pyairtable/automation-domain/sandbox"
)

// The methods a helper process serves for engines with a Pool.
const (
	methodRender = "template.render"
	methodValue  = "template.value"
)

// HelperHandlers are the renderings a helper process serves (see sandbox.ServeHelperIfRequested):
// the same code as in-process rendering, under the budget the request carries.
func HelperHandlers() sandbox.Handlers {
	e := New(Options{})
	decode := func(raw json.RawMessage) (renderArgs, error) {
		var a renderArgs
		err := sandbox.DecodeJSON(raw, &a, true)
		if a.MaxOutput <= 0 {
			a.MaxOutput = DefaultMaxOutput
		}
		return a, err
	}
	return sandbox.Handlers{
		methodRender: func(b *sandbox.Budget, raw json.RawMessage) (any, error) {
			a, err := decode(raw)
			if err != nil {
				return nil, err
			}
			return e.renderIn(b, a.Src, a.Data, a.HTML, a.MaxOutput)
		},
		methodValue: func(b *sandbox.Budget, raw json.RawMessage) (any, error) {
			a, err := decode(raw)
			if err != nil {
				return nil, err
			}
			return e.renderValueIn(b, a.Value, a.Data, a.MaxOutput)
		},
	}
}
