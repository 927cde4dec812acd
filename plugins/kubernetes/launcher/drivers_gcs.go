//go:build !weir_no_gcs

package launcher

// Google Cloud Storage, gs://; build with -tags weir_no_gcs to leave it out of a
// launcher that will never use it (the drivers are most of its size).
import _ "gocloud.dev/blob/gcsblob"
