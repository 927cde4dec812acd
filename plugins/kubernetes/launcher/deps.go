package launcher

// Pins the gocloud.dev drivers the launcher is being built on; removed once
// the launcher's own files import them.
import (
	_ "gocloud.dev/blob"
	_ "gocloud.dev/blob/azureblob"
	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/gcsblob"
	_ "gocloud.dev/blob/s3blob"
)
