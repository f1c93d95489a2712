// Starts Swagger UI over the service's own OpenAPI document. Served from the same origin as the
// page so that the Content-Security-Policy allows no inline script and no other origin.
(function () {
  "use strict";

  // The filter box searches operations (path, method, summary, operationId, description and
  // tag), not only tag names as Swagger UI's default filter does.
  function searchPlugin() {
    return {
      fn: {
        opsFilter: function (taggedOps, phrase) {
          var q = String(phrase || "").toLowerCase().trim();
          if (!q) {
            return taggedOps;
          }
          return taggedOps
            .map(function (tagObj, tag) {
              return tagObj.set("operations", tagObj.get("operations").filter(function (op) {
                var text = [
                  tag,
                  op.get("method"),
                  op.get("path"),
                  op.getIn(["operation", "summary"]),
                  op.getIn(["operation", "operationId"]),
                  op.getIn(["operation", "description"]),
                ].join(" ").toLowerCase();
                return text.indexOf(q) !== -1;
              }));
            })
            .filter(function (tagObj) {
              return tagObj.get("operations").size > 0;
            });
        },
      },
    };
  }

  window.addEventListener("DOMContentLoaded", function () {
    window.ui = window.SwaggerUIBundle({
      url: "openapi.json",
      dom_id: "#swagger-ui",
      presets: [window.SwaggerUIBundle.presets.apis],
      plugins: [searchPlugin],
      layout: "BaseLayout",
      deepLinking: true,
      filter: true,
      displayOperationId: true,
      displayRequestDuration: true,
      defaultModelsExpandDepth: 0,
      defaultModelExpandDepth: 3,
      docExpansion: "list",
      showCommonExtensions: true,
      // No third-party validator badge: the page calls only this service.
      validatorUrl: null,
      queryConfigEnabled: false,
    });
  });
})();
