//go:build !weir_no_s3

package launcher

// Amazon S3 (and S3-compatible stores), s3://; build with -tags weir_no_s3 to leave it out of a
// launcher that will never use it (the drivers are most of its size).
import _ "gocloud.dev/blob/s3blob"
